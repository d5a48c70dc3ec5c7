# Windows PowerShell: make .venv and install flowml with its built-in plugins (-Dev: and the test
# tools), the steps of scripts/setup.sh. One line per step; pip's output goes to .venv\setup.log
# and is shown only when a step fails. NOT run by the project: there is no Windows machine in
# its CI (see the README's install section).
param([switch]$Dev)
$ErrorActionPreference = "Stop"
Set-Location (Split-Path -Parent $PSScriptRoot)
$req = if ($Dev) { "requirements-dev.txt" } else { "requirements.txt" }
$py = ".venv\Scripts\python.exe"
if (-not (Test-Path $py)) {
    if (Get-Command py -ErrorAction SilentlyContinue) { py -3 -m venv .venv } else { python -m venv .venv }
    if (-not (Test-Path $py)) { throw "could not make .venv: install Python 3.11+ from python.org (with the py launcher)" }
}
$log = ".venv\setup.log"
Set-Content -Path $log -Value "" -Encoding utf8
function Step([string]$What, [string[]]$PipArgs) {
    $t0 = Get-Date
    Write-Host -NoNewline "setup: $What ... "
    $ErrorActionPreference = "Continue"   # pip's warnings on stderr are not failures
    $out = & $py -m pip install -q @PipArgs 2>&1 | ForEach-Object { "$_" }
    $rc = $LASTEXITCODE
    $out | Out-File -FilePath $log -Append -Encoding utf8
    if ($rc -ne 0) {
        Write-Host "failed"
        $out | Write-Host
        throw "setup: failed: pip install $PipArgs (the whole log: $log)"
    }
    $out | Where-Object { $_ -match '^(WARNING|ERROR):' -and $_ -notmatch "is ignored|BuildBackendWarning" } | Write-Host
    Write-Host ("done ({0:N0} s)" -f ((Get-Date) - $t0).TotalSeconds)
}
Step "pip" @("--upgrade", "pip")
Step "flowml, its plugins (editable), torch and their dependencies (first run: minutes)" @("-r", $req)
# Roboflow's trackers depends on opencv-python, a second cv2 over flowml-cv's contrib build:
# installed without its dependencies, the others named (as scripts/setup.sh does)
Step "Roboflow trackers, without its opencv-python (one cv2 stays)" @("--no-deps", "trackers>=2.6,<2.7")
Step "trackers' other dependencies" @("supervision>=0.30", "scipy>=1.13.1", "rich>=13", "requests>=2.28", "pydeprecate>=0.8")
Write-Host "setup: .venv is ready (pip's output: $log)"
