# Windows PowerShell: what scripts/test.sh does, without its Debian packages: tests that start
# oscsend/oscdump, ffmpeg, ip/unshare or g++ skip where those are not on PATH (they fail instead
# when CI is set). Takes pytest options. NOT run by the project (no Windows machine in its CI).
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
& "$PSScriptRoot\setup.ps1" -Dev
.venv\Scripts\python.exe models\build_demo_models.py
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
.venv\Scripts\python.exe -m pytest @args
exit $LASTEXITCODE
