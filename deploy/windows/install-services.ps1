<#
.SYNOPSIS
    Registers msgrelay's roles to start at boot and restart after a crash (Windows Server).

.DESCRIPTION
    Registers one scheduled task per process in the Task Scheduler folder \msgrelay\:
        msgrelay-server            msgrelay server --config <Config>   (internal API + portal)
        msgrelay-proxy             msgrelay proxy  --config <Config>
        msgrelay-worker-1 .. -N    msgrelay worker --config <Config>   (-Workers N)
    and locks down the install and data directories with icacls.

    WHY SCHEDULED TASKS AND NOT WINDOWS SERVICES
    msgrelay.exe is a plain console program. A Windows service must answer the Service
    Control Manager (report "running", accept "stop"); a console program registered with
    New-Service or sc.exe does not, so the SCM kills it after ~30 s with error 1053. Until
    the binary has SCM integration (or a service wrapper such as WinSW is approved for the
    project), scheduled tasks are the supported way to run it unattended:
      * trigger "At startup" (30 s delay so MySQL/Redis come up first), no user logon needed;
      * a second trigger every minute, with "do not start a new instance" if it is running:
        this is what restarts a crashed process within a minute. Task Scheduler's own
        "restart on failure" (also set, RestartCount/RestartInterval) only covers a task that
        fails to launch, not a program that exits with an error;
      * no execution time limit (the default would kill the process after 72 hours) and normal
        priority (tasks default to below-normal CPU and I/O priority);
      * each task runs run-role.ps1, which ties msgrelay.exe to itself with a job object so that
        stopping the task really stops msgrelay.exe.
    Virtual service accounts (NT SERVICE\name) exist only for real services, so the tasks run as
    LOCAL SERVICE by default (a built-in low-privilege account without a password), as SYSTEM
    (-RunAs System, not recommended: a compromise of the network-facing proxy would own the
    machine), or as a dedicated account you created (-RunAs User -Credential ...; that account
    needs the "Log on as a batch job" right, secpol.msc > Local Policies > User Rights Assignment).

    Stop and start everything with control-tasks.ps1. Re-running this script replaces the tasks.

.PARAMETER InstallDir
    Folder with msgrelay.exe and these scripts (copied there as InstallDir\scripts\*.ps1).
.PARAMETER DataDir
    msgrelay's data_dir (PKI, keys, logs). Must match data_dir in the configuration.
.PARAMETER Config
    The TOML configuration (see msgrelay.toml.example beside this script).
.PARAMETER Workers
    Number of worker processes (1-9). Each also runs worker.concurrency deliveries in parallel.
.PARAMETER Roles
    Which roles this host runs; e.g. -Roles proxy on a DMZ host, -Roles server,worker inside.
.PARAMETER FirewallPorts
    Inbound TCP ports to open in Windows Firewall, e.g. 8443 (proxy) or 8443,9444 (proxy, portal).
.PARAMETER Start
    Start the tasks right away instead of at the next boot.

.EXAMPLE
    # As Administrator, in the folder holding the scripts:
    .\install-services.ps1 -InstallDir C:\msgrelay -DataDir C:\msgrelay\data -Config C:\msgrelay\msgrelay.toml -Workers 2 -FirewallPorts 8443 -Start
#>
[CmdletBinding()]
param(
    [string]$InstallDir = 'C:\msgrelay',
    [string]$DataDir = 'C:\msgrelay\data',
    [string]$Config = 'C:\msgrelay\msgrelay.toml',
    [ValidateRange(0, 9)]
    [int]$Workers = 2,
    [ValidateSet('proxy', 'worker', 'server')]
    [string[]]$Roles = @('server', 'proxy', 'worker'),
    [ValidateSet('LocalService', 'System', 'User')]
    [string]$RunAs = 'LocalService',
    [System.Management.Automation.PSCredential]$Credential,
    [int[]]$FirewallPorts = @(),
    [switch]$Start
)

Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
$TaskPath = '\msgrelay\'

function Fail([string]$message) {
    Write-Host "ERROR: $message" -ForegroundColor Red
    exit 1
}

function Invoke-Icacls([string[]]$arguments) {
    & icacls.exe @arguments | Out-Null
    if ($LASTEXITCODE -ne 0) { Fail "icacls $($arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

# --- checks --------------------------------------------------------------------------------
$identity = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 'Run this script in an elevated PowerShell (Run as Administrator).'
}
$exe = Join-Path $InstallDir 'msgrelay.exe'
if (-not (Test-Path -LiteralPath $exe -PathType Leaf)) {
    Fail "msgrelay.exe not found in '$InstallDir'. Build it with 'cargo build --release' and copy target\release\msgrelay.exe there."
}
if (-not (Test-Path -LiteralPath $Config -PathType Leaf)) {
    Fail "Configuration '$Config' not found. Copy msgrelay.toml.example (beside this script) there and edit it."
}
if ($RunAs -eq 'User' -and $null -eq $Credential) {
    Fail "-RunAs User needs -Credential (Get-Credential 'HOST\msgrelay')."
}
if ($Roles -contains 'worker' -and $Workers -lt 1) {
    Fail '-Workers must be at least 1 when this host runs the worker role.'
}
# The configuration's data_dir should be this -DataDir, else the ACLs protect the wrong folder.
$dataLine = Select-String -LiteralPath $Config -Pattern '^\s*data_dir\s*=\s*[''"](.*)[''"]' | Select-Object -First 1
if ($dataLine) {
    $configured = $dataLine.Matches[0].Groups[1].Value -replace '\\\\', '\'
    # A relative data_dir is relative to the tasks' working directory, InstallDir.
    $resolved = if ([IO.Path]::IsPathRooted($configured)) { $configured } else { Join-Path $InstallDir $configured }
    if ([IO.Path]::GetFullPath($resolved.TrimEnd('\', '/')) -ne [IO.Path]::GetFullPath($DataDir.TrimEnd('\', '/'))) {
        Write-Warning "data_dir in '$Config' is '$configured' but -DataDir is '$DataDir'. They should be the same folder."
    }
}

# --- account -------------------------------------------------------------------------------
# Well-known SIDs, so this works on any Windows display language.
$sidAdmins = 'S-1-5-32-544'
$sidSystem = 'S-1-5-18'
switch ($RunAs) {
    'LocalService' { $accountSid = 'S-1-5-19' }
    'System' { $accountSid = $sidSystem }
    'User' {
        $accountSid = (New-Object Security.Principal.NTAccount($Credential.UserName)).Translate([Security.Principal.SecurityIdentifier]).Value
    }
}
$accountName = (New-Object Security.Principal.SecurityIdentifier($accountSid)).Translate([Security.Principal.NTAccount]).Value
Write-Host "Tasks will run as $accountName"

# --- folders and permissions ---------------------------------------------------------------
# InstallDir: the binary, scripts and configuration (with the DB password). Inheritance from
# C:\ is cut because C:\ lets every authenticated user create and modify files in new folders,
# which would let anyone replace msgrelay.exe or read the configuration.
$scriptsDir = Join-Path $InstallDir 'scripts'
New-Item -ItemType Directory -Path $scriptsDir -Force | Out-Null
foreach ($name in 'run-role.ps1', 'control-tasks.ps1', 'uninstall-services.ps1', 'start-proxy.ps1', 'start-worker.ps1', 'start-server.ps1') {
    $source = Join-Path $PSScriptRoot $name
    if (Test-Path -LiteralPath $source) {
        if ([IO.Path]::GetFullPath($source) -ne [IO.Path]::GetFullPath((Join-Path $scriptsDir $name))) {
            Copy-Item -LiteralPath $source -Destination $scriptsDir -Force
        }
    } elseif ($name -eq 'run-role.ps1') {
        Fail "run-role.ps1 must be beside this script ($PSScriptRoot)."
    }
}
$runner = Join-Path $scriptsDir 'run-role.ps1'

Invoke-Icacls @($InstallDir, '/inheritance:r', '/grant:r',
    "*${sidAdmins}:(OI)(CI)F", "*${sidSystem}:(OI)(CI)F", "*${accountSid}:(OI)(CI)RX")

# DataDir: keys, PKI, SQLite files and logs. Only the service account and Administrators.
New-Item -ItemType Directory -Path $DataDir -Force | Out-Null
New-Item -ItemType Directory -Path (Join-Path $DataDir 'logs') -Force | Out-Null
Invoke-Icacls @($DataDir, '/inheritance:r', '/grant:r',
    "*${sidAdmins}:(OI)(CI)F", "*${sidSystem}:(OI)(CI)F", "*${accountSid}:(OI)(CI)M")
# Existing files (e.g. from 'msgrelay init' run by an administrator) inherit the same rights.
foreach ($item in Get-ChildItem -LiteralPath $DataDir -Force) {
    Invoke-Icacls @($item.FullName, '/reset', '/T', '/C', '/Q')
}
# The configuration holds the database password: readable by the service account only.
Invoke-Icacls @($Config, '/inheritance:r', '/grant:r', "*${sidAdmins}:F", "*${sidSystem}:F", "*${accountSid}:R")
Write-Host "Permissions set: $InstallDir (read for $accountName), $DataDir (modify for $accountName)"

# --- tasks ---------------------------------------------------------------------------------
$processes = @()
if ($Roles -contains 'server') { $processes += @{ Name = 'msgrelay-server'; Role = 'server'; Instance = 1 } }
if ($Roles -contains 'proxy') { $processes += @{ Name = 'msgrelay-proxy'; Role = 'proxy'; Instance = 1 } }
if ($Roles -contains 'worker') {
    foreach ($i in 1..$Workers) { $processes += @{ Name = "msgrelay-worker-$i"; Role = 'worker'; Instance = $i } }
}

$settings = New-ScheduledTaskSettingsSet `
    -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -RestartCount 255 `
    -RestartInterval (New-TimeSpan -Minutes 1) `
    -MultipleInstances IgnoreNew `
    -StartWhenAvailable `
    -AllowStartIfOnBatteries `
    -DontStopIfGoingOnBatteries `
    -DontStopOnIdleEnd `
    -Priority 4
# RestartCount 255: the task XML schema stores it in one byte. The every-minute trigger below
# keeps restarting a crashed process without any limit.

$atStartup = New-ScheduledTaskTrigger -AtStartup
$atStartup.Delay = 'PT30S'
# 9999 days instead of "indefinitely": accepted the same way by every Windows Server version.
$everyMinute = New-ScheduledTaskTrigger -Once -At (Get-Date).Date `
    -RepetitionInterval (New-TimeSpan -Minutes 1) -RepetitionDuration (New-TimeSpan -Days 9999)

foreach ($p in $processes) {
    $stderrLog = Join-Path (Join-Path $DataDir 'logs') "$($p.Name).stderr.log"
    $arguments = '-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}" -Role {1} -Instance {2} -InstallDir "{3}" -Config "{4}" -StderrLog "{5}"' -f `
        $runner, $p.Role, $p.Instance, $InstallDir, $Config, $stderrLog
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument $arguments -WorkingDirectory $InstallDir

    $register = @{
        TaskName    = $p.Name
        TaskPath    = $TaskPath
        Action      = $action
        Trigger     = @($atStartup, $everyMinute)
        Settings    = $settings
        Description = "msgrelay $($p.Role) (installed by install-services.ps1; manage with control-tasks.ps1)"
        Force       = $true
    }
    if ($RunAs -eq 'User') {
        $register['User'] = $Credential.UserName
        $register['Password'] = $Credential.GetNetworkCredential().Password
        $register['RunLevel'] = 'Limited'
    } else {
        $register['Principal'] = New-ScheduledTaskPrincipal -UserId $accountName -LogonType ServiceAccount -RunLevel Limited
    }
    Register-ScheduledTask @register | Out-Null
    Write-Host "Registered task $TaskPath$($p.Name)"
}

# A re-install with fewer workers removes the tasks of the workers no longer wanted.
$wanted = @($processes | ForEach-Object { $_['Name'] })
Get-ScheduledTask -TaskPath $TaskPath -ErrorAction SilentlyContinue |
    Where-Object { $_.TaskName -like 'msgrelay-worker-*' -and ($wanted -notcontains $_.TaskName) } |
    ForEach-Object {
        Stop-ScheduledTask -TaskPath $TaskPath -TaskName $_.TaskName -ErrorAction SilentlyContinue
        Unregister-ScheduledTask -TaskPath $TaskPath -TaskName $_.TaskName -Confirm:$false
        Write-Host "Removed task $TaskPath$($_.TaskName)"
    }

# --- firewall ------------------------------------------------------------------------------
foreach ($port in $FirewallPorts) {
    $ruleName = "msgrelay TCP $port"
    if (-not (Get-NetFirewallRule -DisplayName $ruleName -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -DisplayName $ruleName -Direction Inbound -Protocol TCP -LocalPort $port -Action Allow -Profile Any | Out-Null
        Write-Host "Firewall: opened inbound TCP $port"
    }
}

# --- start ---------------------------------------------------------------------------------
if ($Start) {
    foreach ($p in $processes) { Start-ScheduledTask -TaskPath $TaskPath -TaskName $p.Name }
    Write-Host 'Started. Check with:  .\control-tasks.ps1 status'
} else {
    Write-Host "Installed. The tasks start at the next boot, or now with:  $scriptsDir\control-tasks.ps1 start"
}
Write-Host "Logs: $DataDir\logs\msgrelay.log.YYYY-MM-DD; start-up errors: $DataDir\logs\<task>.stderr.log"
