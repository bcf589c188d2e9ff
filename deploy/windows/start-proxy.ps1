<#
.SYNOPSIS
    Runs the msgrelay proxy in this console, for testing (Ctrl-C stops it).

.DESCRIPTION
    The same process the scheduled task msgrelay-proxy runs, in the foreground, so start-up
    errors are visible. Stop the task first (.\control-tasks.ps1 stop -Name msgrelay-proxy),
    otherwise the ports are taken.

.EXAMPLE
    .\start-proxy.ps1 -InstallDir C:\msgrelay -Config C:\msgrelay\msgrelay.toml
#>
[CmdletBinding()]
param(
    [string]$InstallDir = 'C:\msgrelay',
    [string]$Config = 'C:\msgrelay\msgrelay.toml'
)

& (Join-Path $PSScriptRoot 'run-role.ps1') -Role proxy -InstallDir $InstallDir -Config $Config
exit $LASTEXITCODE
