<#
.SYNOPSIS
    Starts the msgrelay services: the main server first, then workers and the proxy.
#>
Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$order = { switch -Wildcard ($_.Name) { 'msgrelay-server' { 0 } 'msgrelay-portal' { 1 } 'msgrelay-worker*' { 2 } default { 3 } } }
Get-Service -Name 'msgrelay-*' | Sort-Object $order | ForEach-Object {
    if ($_.Status -ne 'Running') { Start-Service -Name $_.Name; Write-Host "$($_.Name): started" }
}
Get-Service -Name 'msgrelay-*' | Format-Table -AutoSize Name, Status, StartType
