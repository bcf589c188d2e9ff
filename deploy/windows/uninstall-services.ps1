<#
.SYNOPSIS
    Stops and removes the msgrelay scheduled tasks and firewall rules.

.DESCRIPTION
    Leaves msgrelay.exe, the configuration and the data directory in place: the data directory
    holds keys/ (without it the stored messages cannot be decrypted) and pki/. Delete them by hand
    only after a backup (see docs/operations.md), or keep them for a re-install.

.EXAMPLE
    .\uninstall-services.ps1
#>
[CmdletBinding()]
param(
    [switch]$KeepFirewallRules
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$TaskPath = '\msgrelay\'

$identity = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Host 'ERROR: Run this script in an elevated PowerShell (Run as Administrator).' -ForegroundColor Red
    exit 1
}

$tasks = @(Get-ScheduledTask -TaskPath $TaskPath -ErrorAction SilentlyContinue)
foreach ($t in $tasks) {
    # Disable first so the every-minute trigger cannot start it again in between.
    Disable-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName | Out-Null
    Stop-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName
    Unregister-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName -Confirm:$false
    Write-Host "Removed task $TaskPath$($t.TaskName)"
}
if ($tasks.Count -eq 0) { Write-Host "No msgrelay tasks found in $TaskPath." }

if (-not $KeepFirewallRules) {
    Get-NetFirewallRule -DisplayName 'msgrelay TCP *' -ErrorAction SilentlyContinue | ForEach-Object {
        Remove-NetFirewallRule -Name $_.Name
        Write-Host "Removed firewall rule '$($_.DisplayName)'"
    }
}
Write-Host 'Done. Program files, configuration and the data directory (keys!) were left in place.'
