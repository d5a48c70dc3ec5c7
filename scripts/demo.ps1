# Windows PowerShell: what scripts/demo.sh does. Set up .venv, build the demo's model (no
# download), run graphs\demo.yaml: writes out\demo.mp4 and out\demo.png. Takes `flowml run`
# options (.\scripts\demo.ps1 --stats). NOT run by the project (no Windows machine in its CI).
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
& "$PSScriptRoot\setup.ps1"
.venv\Scripts\python.exe models\build_demo_models.py
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
.venv\Scripts\flowml.exe run graphs\demo.yaml @args
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host "wrote out\demo.mp4 and out\demo.png"
