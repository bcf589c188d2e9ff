<#
.SYNOPSIS
    Runs msgrelay worker process(es) for testing; with -Count 1 in this console (Ctrl-C stops it).

.DESCRIPTION
    -Count N > 1 opens one new console window per worker (close a window or press Ctrl-C in it to
    stop that worker). Each worker gets its own ops port, 127.0.0.1:9111 .. 9119. Stop the
    msgrelay-worker-* scheduled tasks first if they run (.\control-tasks.ps1 stop -Name msgrelay-worker-*).

.EXAMPLE
    .\start-worker.ps1 -Count 2 -InstallDir C:\msgrelay -Config C:\msgrelay\msgrelay.toml
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 9)]
    [int]$Count = 1,
    [string]$InstallDir = 'C:\msgrelay',
    [string]$Config = 'C:\msgrelay\msgrelay.toml'
)

$runner = Join-Path $PSScriptRoot 'run-role.ps1'
if ($Count -eq 1) {
    & $runner -Role worker -Instance 1 -InstallDir $InstallDir -Config $Config
    exit $LASTEXITCODE
}
foreach ($i in 1..$Count) {
    $arguments = '-NoProfile -ExecutionPolicy Bypass -NoExit -File "{0}" -Role worker -Instance {1} -InstallDir "{2}" -Config "{3}"' -f `
        $runner, $i, $InstallDir, $Config
    Start-Process -FilePath 'powershell.exe' -ArgumentList $arguments | Out-Null
    Write-Host "worker $i started in a new window (ops http://127.0.0.1:911$i/ready)"
}
