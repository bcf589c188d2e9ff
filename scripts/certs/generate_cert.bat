@echo off
rem Issues a client certificate with the OpenSSL command line, signed by msgrelay's client CA, then
rem registers it with msgrelay. Same OpenSSL calls and file names as generate_cert.sh.
rem usage: generate_cert.bat DATA_DIR CLIENT_ID DOMAIN DAYS OUT_DIR
rem CLIENT_ID and DOMAIN are checked by msgrelay when registering; use letters, digits, '.', '-', '_' only.
setlocal EnableExtensions
if "%~5"=="" (
  echo usage: generate_cert.bat DATA_DIR CLIENT_ID DOMAIN DAYS OUT_DIR 1>&2
  exit /b 2
)
set "DATA_DIR=%~1"
set "CLIENT_ID=%~2"
set "DOMAIN=%~3"
set "DAYS=%~4"
set "OUT=%~5"
set "PKI=%DATA_DIR%\pki"

where openssl >nul 2>nul || (echo openssl not found on PATH 1>&2 & exit /b 1)
for %%f in (client-ca.crt client-ca.key internal-ca.crt) do (
  if not exist "%PKI%\%%f" (
    echo %PKI%\%%f not found; run "msgrelay init --data-dir %DATA_DIR%" first 1>&2
    exit /b 1
  )
)
if exist "%OUT%\client.key" (
  echo %OUT%\client.key already exists; choose another OUT_DIR 1>&2
  exit /b 1
)
if not exist "%OUT%" mkdir "%OUT%"

set "EXT=%OUT%\client.ext"
> "%EXT%" echo basicConstraints = critical, CA:FALSE
>> "%EXT%" echo keyUsage = critical, digitalSignature
>> "%EXT%" echo extendedKeyUsage = clientAuth
>> "%EXT%" echo subjectAltName = DNS:%DOMAIN%
>> "%EXT%" echo subjectKeyIdentifier = hash
>> "%EXT%" echo authorityKeyIdentifier = keyid

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "%OUT%\client.key" || goto :fail
icacls "%OUT%\client.key" /inheritance:r /grant:r "%USERNAME%:F" >nul
openssl req -new -key "%OUT%\client.key" -subj "/O=msgrelay/OU=%DOMAIN%/CN=%CLIENT_ID%" -out "%OUT%\client.csr" || goto :fail
for /f %%i in ('openssl rand -hex 16') do set "SERIAL=%%i"
openssl x509 -req -in "%OUT%\client.csr" -CA "%PKI%\client-ca.crt" -CAkey "%PKI%\client-ca.key" -set_serial 0x%SERIAL% -days %DAYS% -sha256 -extfile "%EXT%" -out "%OUT%\client.crt" || goto :fail
copy /y "%PKI%\internal-ca.crt" "%OUT%\ca.crt" >nul
del "%EXT%" "%OUT%\client.csr"

echo wrote %OUT%\client.crt, %OUT%\client.key, %OUT%\ca.crt
openssl x509 -in "%OUT%\client.crt" -noout -serial
openssl x509 -in "%OUT%\client.crt" -noout -fingerprint -sha256

set "MSGRELAY=%MSGRELAY_BIN%"
if "%MSGRELAY%"=="" for /f "delims=" %%m in ('where msgrelay 2^>nul') do if not defined MSGRELAY set "MSGRELAY=%%m"
if "%MSGRELAY%"=="" (
  echo msgrelay is not on PATH ^(set MSGRELAY_BIN^): the proxy refuses this certificate until you register it:
  echo   msgrelay certs register --client-id %CLIENT_ID% --cert %OUT%\client.crt --data-dir %DATA_DIR%
  exit /b 0
)
"%MSGRELAY%" certs register --client-id %CLIENT_ID% --cert "%OUT%\client.crt" --data-dir "%DATA_DIR%" || exit /b 1
exit /b 0

:fail
del "%EXT%" "%OUT%\client.csr" 2>nul
echo generate_cert.bat: openssl failed 1>&2
exit /b 1
