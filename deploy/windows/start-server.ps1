<#
.SYNOPSIS
    Runs the msgrelay server in this console, for testing (Ctrl-C stops it).

.DESCRIPTION
    The same process the scheduled task msgrelay-server runs, in the foreground, so start-up
    errors are visible. Stop the task first (.\control-tasks.ps1 stop -Name msgrelay-server),
    otherwise the ports are taken.

.EXAMPLE
    .\start-server.ps1 -InstallDir C:\msgrelay -Config C:\msgrelay\msgrelay.toml
#>
[CmdletBinding()]
param(
    [string]$InstallDir = 'C:\msgrelay',
    [string]$Config = 'C:\msgrelay\msgrelay.toml'
)

& (Join-Path $PSScriptRoot 'run-role.ps1') -Role server -InstallDir $InstallDir -Config $Config
exit $LASTEXITCODE
