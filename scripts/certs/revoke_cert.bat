@echo off
rem Revokes a client certificate by serial through msgrelay, which keeps the revocation list in its
rem database and re-signs pki\client-ca.crl (see revoke_cert.sh for why `openssl ca` is not used).
rem usage: revoke_cert.bat DATA_DIR SERIAL [REASON]
setlocal EnableExtensions
if "%~2"=="" (
  echo usage: revoke_cert.bat DATA_DIR SERIAL [REASON] 1>&2
  exit /b 2
)
set "DATA_DIR=%~1"
set "SERIAL=%~2"
set "MSGRELAY=%MSGRELAY_BIN%"
if "%MSGRELAY%"=="" for /f "delims=" %%m in ('where msgrelay 2^>nul') do if not defined MSGRELAY set "MSGRELAY=%%m"
if "%MSGRELAY%"=="" (
  echo msgrelay not found; put it on PATH or set MSGRELAY_BIN 1>&2
  exit /b 1
)
if "%~3"=="" (
  "%MSGRELAY%" certs revoke --serial %SERIAL% --data-dir "%DATA_DIR%" || exit /b 1
) else (
  "%MSGRELAY%" certs revoke --serial %SERIAL% --reason %~3 --data-dir "%DATA_DIR%" || exit /b 1
)
where openssl >nul 2>nul && if exist "%DATA_DIR%\pki\client-ca.crl" openssl crl -in "%DATA_DIR%\pki\client-ca.crl" -noout -nextupdate
exit /b 0
