<#
.SYNOPSIS
    Start, stop, restart or show the msgrelay scheduled tasks registered by install-services.ps1.

.DESCRIPTION
    stop    disables the tasks first (otherwise the every-minute watchdog trigger would start
            them again) and then ends them; msgrelay.exe ends with them (job object, see
            run-role.ps1). Nothing accepted is lost: a stopped worker's messages are taken over.
    start   enables and starts them.
    status  shows each task's state, its last result, and whether its ops endpoint is ready.

    -Name picks tasks by wildcard, e.g. -Name msgrelay-worker-* or -Name msgrelay-proxy.

.EXAMPLE
    .\control-tasks.ps1 status
    .\control-tasks.ps1 restart -Name msgrelay-worker-*
    .\control-tasks.ps1 stop
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true, Position = 0)]
    [ValidateSet('start', 'stop', 'restart', 'status')]
    [string]$Action,
    [string]$Name = 'msgrelay-*'
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$TaskPath = '\msgrelay\'

$tasks = @(Get-ScheduledTask -TaskPath $TaskPath -ErrorAction SilentlyContinue | Where-Object { $_.TaskName -like $Name })
if ($tasks.Count -eq 0) {
    Write-Host "No task matching '$Name' in $TaskPath. Run install-services.ps1 first." -ForegroundColor Red
    exit 1
}

function Stop-Tasks {
    foreach ($t in $tasks) {
        Disable-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName | Out-Null
        Stop-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName
        Write-Host "stopped  $($t.TaskName)"
    }
}

function Start-Tasks {
    # The server first: proxies and workers talk to it.
    foreach ($t in ($tasks | Sort-Object { if ($_.TaskName -eq 'msgrelay-server') { 0 } else { 1 } })) {
        Enable-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName | Out-Null
        Start-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName
        Write-Host "started  $($t.TaskName)"
    }
}

function Get-OpsUrl([string]$taskName) {
    switch -Wildcard ($taskName) {
        'msgrelay-proxy' { return 'http://127.0.0.1:9100' }
        'msgrelay-server' { return 'http://127.0.0.1:9101' }
        'msgrelay-worker-*' { return 'http://127.0.0.1:911' + $taskName.Substring('msgrelay-worker-'.Length) }
    }
    return $null
}

function Show-Status {
    foreach ($t in $tasks) {
        $info = Get-ScheduledTaskInfo -TaskPath $TaskPath -TaskName $t.TaskName
        $state = (Get-ScheduledTask -TaskPath $TaskPath -TaskName $t.TaskName).State
        $ready = '-'
        $ops = Get-OpsUrl $t.TaskName
        if ($ops -and $state -eq 'Running') {
            try {
                $r = Invoke-WebRequest -Uri "$ops/ready" -UseBasicParsing -TimeoutSec 3
                $ready = "ready ($($r.StatusCode))"
            } catch {
                $ready = 'NOT ready'
            }
        }
        '{0,-20} {1,-9} last result 0x{2:X8} at {3}   {4}' -f $t.TaskName, $state, $info.LastTaskResult, $info.LastRunTime, $ready
    }
    Write-Host 'Last result 0x00041301 = still running; 0x00000000 = exited normally; others are msgrelay.exe exit codes.'
}

switch ($Action) {
    'stop' { Stop-Tasks }
    'start' { Start-Tasks }
    'restart' { Stop-Tasks; Start-Sleep -Seconds 2; Start-Tasks }
    'status' { Show-Status }
}
