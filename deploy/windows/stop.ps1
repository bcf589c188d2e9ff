<#
.SYNOPSIS
    Stops the msgrelay services gracefully (proxy first, so no new message is accepted, then
    workers finish their leased batches, then the main server). Stop-Service waits while a
    service reports StopPending.
#>
Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$order = { switch -Wildcard ($_.Name) { 'msgrelay-proxy' { 0 } 'msgrelay-worker*' { 1 } 'msgrelay-portal' { 2 } default { 3 } } }
Get-Service -Name 'msgrelay-*' | Sort-Object $order | ForEach-Object {
    if ($_.Status -ne 'Stopped') { Stop-Service -Name $_.Name; Write-Host "$($_.Name): stopped" }
}
