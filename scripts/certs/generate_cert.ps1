# Issues a client certificate with the OpenSSL command line, signed by msgrelay's client CA, then
# registers it with msgrelay. Same OpenSSL calls and file names as generate_cert.sh.
# Needs openssl.exe on PATH (e.g. the one shipped with Git for Windows).
param(
    [Parameter(Mandatory = $true)][string]$DataDir,
    [Parameter(Mandatory = $true)][string]$ClientId,
    [Parameter(Mandatory = $true)][string]$Domain,
    [int]$Days = 825,
    [Parameter(Mandatory = $true)][string]$Out
)
$ErrorActionPreference = "Stop"

function Die($msg) { Write-Error "generate_cert.ps1: $msg"; exit 1 }
function Run-OpenSsl { & openssl @args; if ($LASTEXITCODE -ne 0) { Die "openssl $($args[0]) failed" } }

if ($ClientId -notmatch '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$') { Die "-ClientId must be 1-64 letters, digits, '.', '_' or '-'" }
if ($Domain -notmatch '^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$') { Die "-Domain must be a DNS name" }
if ($Days -lt 1) { Die "-Days must be a positive number" }
if (-not (Get-Command openssl -ErrorAction SilentlyContinue)) { Die "openssl not found on PATH" }

$Pki = Join-Path $DataDir "pki"
foreach ($f in "client-ca.crt", "client-ca.key", "internal-ca.crt") {
    if (-not (Test-Path (Join-Path $Pki $f))) { Die "$Pki\$f not found; run 'msgrelay init --data-dir $DataDir' first (this needs the client CA key on this machine)" }
}
if (Test-Path (Join-Path $Out "client.key")) { Die "$Out\client.key already exists; choose another -Out directory" }
New-Item -ItemType Directory -Force -Path $Out | Out-Null

$Ext = Join-Path $Out "client.ext"
$Csr = Join-Path $Out "client.csr"
$Key = Join-Path $Out "client.key"
$Crt = Join-Path $Out "client.crt"
try {
    @(
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature",
        "extendedKeyUsage = clientAuth",
        "subjectAltName = DNS:$Domain",
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid"
    ) | Set-Content -Encoding ascii -Path $Ext

    Run-OpenSsl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $Key
    # Owner-only: remove inherited permissions, grant the current user full control.
    icacls $Key /inheritance:r /grant:r "$($env:USERNAME):F" | Out-Null
    Run-OpenSsl req -new -key $Key -subj "/O=msgrelay/OU=$Domain/CN=$ClientId" -out $Csr
    $Serial = (& openssl rand -hex 16).Trim()
    Run-OpenSsl x509 -req -in $Csr -CA (Join-Path $Pki "client-ca.crt") -CAkey (Join-Path $Pki "client-ca.key") `
        -set_serial "0x$Serial" -days $Days -sha256 -extfile $Ext -out $Crt
    Copy-Item (Join-Path $Pki "internal-ca.crt") (Join-Path $Out "ca.crt")
} finally {
    Remove-Item -ErrorAction SilentlyContinue $Ext, $Csr
}

Write-Output "wrote $Crt, $Key, $(Join-Path $Out 'ca.crt')"
Run-OpenSsl x509 -in $Crt -noout -serial
Run-OpenSsl x509 -in $Crt -noout -fingerprint -sha256

$Msgrelay = $env:MSGRELAY_BIN
if (-not $Msgrelay) { $cmd = Get-Command msgrelay -ErrorAction SilentlyContinue; if ($cmd) { $Msgrelay = $cmd.Source } }
if ($Msgrelay) {
    & $Msgrelay certs register --client-id $ClientId --cert $Crt --data-dir $DataDir
    if ($LASTEXITCODE -ne 0) { Die "registration failed" }
} else {
    Write-Output "msgrelay is not on PATH (set MSGRELAY_BIN): the proxy refuses this certificate until you register it:"
    Write-Output "  msgrelay certs register --client-id $ClientId --cert $Crt --data-dir $DataDir"
}
