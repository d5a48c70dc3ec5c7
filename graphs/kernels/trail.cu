// A feedback trail for flowml's cuda.kernel node (graphs/kernel_trail.yaml): every pixel keeps
// the brighter of the new frame and the fading memory of the old ones (a state buffer).
extern "C" __global__ void trail(const float* image, float* out, float* memory,
                                 int B, int C, int H, int W, float decay)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    const long long plane = (long long)H * W;
    const long long base = blockIdx.z * C * plane + (long long)y * W + x;
    for (int c = 0; c < C; ++c) {
        const float v = fmaxf(image[base + c * plane], memory[base + c * plane] * decay);
        memory[base + c * plane] = v;
        out[base + c * plane] = v;
    }
}
