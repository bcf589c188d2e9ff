<#
.SYNOPSIS
    Installs msgrelay on Windows Server as native Windows services.

.DESCRIPTION
    Run as Administrator from the unpacked release folder (msgrelay.exe, deploy\, scripts\, docs\).
      1. checks elevation and that the configuration loads;
      2. copies msgrelay.exe, the configuration, certificates (optional -CertsFrom) and these
         scripts to -InstallDir;
      3. runs `msgrelay init` (idempotent) and `msgrelay doctor`, and stops on a FAIL;
      4. registers one service per process with `msgrelay service install`:
           msgrelay-server, msgrelay-proxy, msgrelay-worker-1 .. -N (-Workers N)
         each with automatic (delayed) start, restart on failure after 5 s / 10 s / 30 s, its own
         virtual account NT SERVICE\<name> (given access to the data directory), its own loopback
         ops port (9101 server, 9100 proxy, 9111.. workers) and optional -DependsOn services;
      5. opens Windows Firewall for the proxy port and, with -OpenPortal, the portal port only;
      6. with -Start, starts the services (start.ps1).
    Re-running it after an upgrade replaces msgrelay.exe and re-registers the services.

.EXAMPLE
    .\deploy\windows\install.ps1 -Config C:\msgrelay\msgrelay.toml -Workers 2 -DependsOn MariaDB,Memurai -Start
#>
[CmdletBinding()]
param(
    [string]$InstallDir = 'C:\msgrelay',
    [Parameter(Mandatory = $true)][string]$Config,
    [ValidateSet('proxy', 'worker', 'server', 'portal')]
    [string[]]$Roles = @('server', 'proxy', 'worker'),
    [ValidateRange(1, 9)][int]$Workers = 2,
    [string[]]$DependsOn = @(),
    [string]$CertsFrom = '',
    [int]$ProxyPort = 8443,
    [int]$PortalPort = 9444,
    [switch]$OpenPortal,
    [switch]$Start
)
Set-StrictMode -Version 3
$ErrorActionPreference = 'Stop'
function Fail([string]$m) { Write-Host "ERROR: $m" -ForegroundColor Red; exit 1 }

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Fail 'run this script from an elevated PowerShell (Run as Administrator)'
}
$release = Resolve-Path (Join-Path $PSScriptRoot '..\..')
$exeSource = Join-Path $release 'msgrelay.exe'
if (-not (Test-Path -LiteralPath $exeSource)) { Fail "msgrelay.exe not found in $release (run from the unpacked release zip)" }
if (-not (Test-Path -LiteralPath $Config)) { Fail "configuration $Config not found (start from deploy\windows\msgrelay.toml.example)" }

# Stop running services before replacing the binary (upgrade).
Get-Service -Name 'msgrelay-*' -ErrorAction SilentlyContinue | Where-Object Status -ne 'Stopped' | ForEach-Object {
    Write-Host "stopping $($_.Name) for the upgrade"; Stop-Service -Name $_.Name
}
New-Item -ItemType Directory -Force -Path $InstallDir, (Join-Path $InstallDir 'scripts') | Out-Null
Copy-Item -LiteralPath $exeSource -Destination $InstallDir -Force
Copy-Item -Path (Join-Path $PSScriptRoot '*.ps1'), (Join-Path $PSScriptRoot '*.bat') -Destination (Join-Path $InstallDir 'scripts') -Force
Copy-Item -Path (Join-Path $release 'scripts\certs\*') -Destination (Join-Path $InstallDir 'scripts') -Force
$configTarget = Join-Path $InstallDir 'msgrelay.toml'
if ((Resolve-Path $Config).Path -ne $configTarget) { Copy-Item -LiteralPath $Config -Destination $configTarget -Force }
# The configuration may hold the database password: Administrators and SYSTEM only; services
# read it through the grant `service install` adds for their account.
& icacls.exe $configTarget /inheritance:r /grant:r 'Administrators:F' 'SYSTEM:F' | Out-Null
$exe = Join-Path $InstallDir 'msgrelay.exe'
if ($CertsFrom) {
    # Certificates issued elsewhere (corporate CA); the configuration refers to them by path.
    New-Item -ItemType Directory -Force -Path (Join-Path $InstallDir 'certs') | Out-Null
    Copy-Item -Path (Join-Path $CertsFrom '*') -Destination (Join-Path $InstallDir 'certs') -Recurse -Force
}

& $exe --config $configTarget init
if ($LASTEXITCODE -ne 0) { Fail 'msgrelay init failed (see above)' }
& $exe --config $configTarget doctor
if ($LASTEXITCODE -ne 0) { Fail 'msgrelay doctor reported a FAIL: fix it, then run this script again' }

# One service per process; re-registering replaces an existing one.
$services = @()
foreach ($role in $Roles) {
    if ($role -eq 'worker') {
        foreach ($n in 1..$Workers) { $services += , @('worker', "msgrelay-worker-$n", 9110 + $n) }
    } elseif ($role -eq 'server') { $services += , @('server', 'msgrelay-server', 9101) }
    elseif ($role -eq 'portal') { $services += , @('portal', 'msgrelay-portal', 9102) }
    else { $services += , @('proxy', 'msgrelay-proxy', 9100) }
}
foreach ($s in $services) {
    $role, $name, $ops = $s
    if (Get-Service -Name $name -ErrorAction SilentlyContinue) { & $exe service uninstall $name | Out-Null }
    $svcArgs = @('--config', $configTarget, 'service', 'install', '--role', $role, '--name', $name,
                 '--env', "MSGRELAY_OPS__LISTEN=127.0.0.1:$ops")
    if ($role -eq 'worker') { $svcArgs += @('--env', "MSGRELAY_WORKER__NAME=$env:COMPUTERNAME-$name") }
    # The portal as its own service: the main server stops serving it on the same port.
    if ($role -eq 'server' -and $Roles -contains 'portal') { $svcArgs += @('--env', 'MSGRELAY_SERVER__WITH_PORTAL=false') }
    if ($DependsOn.Count -gt 0) { $svcArgs += @('--depends-on', ($DependsOn -join ',')) }
    & $exe @svcArgs
    if ($LASTEXITCODE -ne 0) { Fail "registering $name failed" }
    & icacls.exe $configTarget /grant "NT SERVICE\${name}:R" | Out-Null
}

# Firewall: the proxy (and the portal if asked); never the internal API or the ops listeners.
$open = @()
if ($Roles -contains 'proxy') { $open += $ProxyPort }
if ($OpenPortal) { $open += $PortalPort }
foreach ($port in $open) {
    $rule = "msgrelay TCP $port"
    if (-not (Get-NetFirewallRule -DisplayName $rule -ErrorAction SilentlyContinue)) {
        New-NetFirewallRule -DisplayName $rule -Direction Inbound -Protocol TCP -LocalPort $port -Action Allow | Out-Null
        Write-Host "firewall: opened inbound TCP $port"
    }
}
if ($Start) { & (Join-Path $PSScriptRoot 'start.ps1') }
Write-Host 'done. Get-Service msgrelay-* shows the services; logs: the data directory''s logs folder and Event Viewer > Application (source msgrelay).'
