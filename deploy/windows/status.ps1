<#
.SYNOPSIS
    Shows the msgrelay services, their readiness (ops listener /ready) and the last events.
#>
Set-StrictMode -Version 3
Get-Service -Name 'msgrelay-*' | Format-Table -AutoSize Name, Status, StartType, DisplayName
foreach ($s in Get-CimInstance Win32_Service -Filter "Name LIKE 'msgrelay-%'") {
    Write-Host "$($s.Name): $($s.State), account $($s.StartName), pid $($s.ProcessId)"
}
foreach ($port in 9100, 9101, 9102, 9111, 9112, 9113) {
    try {
        $r = Invoke-RestMethod -Uri "http://127.0.0.1:$port/ready" -TimeoutSec 2
        Write-Host "ops 127.0.0.1:${port}: ready=$($r.ready)"
    } catch { }
}
Get-EventLog -LogName Application -Source msgrelay -Newest 10 -ErrorAction SilentlyContinue |
    Format-Table -AutoSize TimeGenerated, EntryType, Message
