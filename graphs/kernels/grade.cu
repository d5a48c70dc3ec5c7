// A per-pixel colour grade for flowml's cuda.kernel node (graphs/kernel_grade.yaml):
// lift, gamma and gain on RGB, then saturation around Rec. 709 luma; alpha passes through.
// Arguments: inputs, outputs, then B, C, H, W, then the graph's args in order.
extern "C" __global__ void grade(const float* image, float* out, int B, int C, int H, int W,
                                 float lift, float gamma, float gain, float saturation)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= W || y >= H) return;
    const long long plane = (long long)H * W;
    const long long base = blockIdx.z * C * plane + (long long)y * W + x;
    float rgb[3];
    for (int c = 0; c < 3 && c < C; ++c) {
        float v = image[base + c * plane];
        v = gain * (v + lift * (1.0f - v));           // lift raises the blacks, gain scales
        v = powf(fminf(fmaxf(v, 0.0f), 1.0f), 1.0f / gamma);
        rgb[c] = v;
    }
    if (C >= 3) {
        const float luma = 0.2126f * rgb[0] + 0.7152f * rgb[1] + 0.0722f * rgb[2];
        for (int c = 0; c < 3; ++c)
            rgb[c] = fminf(fmaxf(luma + (rgb[c] - luma) * saturation, 0.0f), 1.0f);
    }
    for (int c = 0; c < C; ++c)
        out[base + c * plane] = c < 3 ? rgb[c] : image[base + c * plane];
}
