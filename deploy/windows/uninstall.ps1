<#
.SYNOPSIS
    Stops and removes every msgrelay service and the firewall rules; keeps the data directory
    (keys, database, logs) and the configuration. Run as Administrator.
#>
[CmdletBinding()]
param([string]$InstallDir = 'C:\msgrelay')
Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$exe = Join-Path $InstallDir 'msgrelay.exe'
foreach ($s in Get-Service -Name 'msgrelay-*' -ErrorAction SilentlyContinue) {
    & $exe service uninstall $s.Name
    if ($LASTEXITCODE -ne 0) { Write-Host "ERROR: could not remove $($s.Name)" -ForegroundColor Red; exit 1 }
}
Get-NetFirewallRule -DisplayName 'msgrelay TCP *' -ErrorAction SilentlyContinue | Remove-NetFirewallRule
Write-Host "msgrelay services removed; data and configuration kept in $InstallDir"
