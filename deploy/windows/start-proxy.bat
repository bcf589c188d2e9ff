@echo off
rem Runs the msgrelay proxy in this window, for testing (Ctrl-C stops it).
rem Usage: start-proxy.bat [INSTALL_DIR] [CONFIG]   defaults: C:\msgrelay  C:\msgrelay\msgrelay.toml
rem Variables set here must not start with MSGRELAY_ unless they are msgrelay settings:
rem msgrelay.exe reads every MSGRELAY_* variable as configuration.
setlocal
set "RELAY_DIR=%~1"
if "%RELAY_DIR%"=="" set "RELAY_DIR=C:\msgrelay"
set "RELAY_CONFIG=%~2"
if "%RELAY_CONFIG%"=="" set "RELAY_CONFIG=%RELAY_DIR%\msgrelay.toml"
if not exist "%RELAY_DIR%\msgrelay.exe" (
    echo ERROR: %RELAY_DIR%\msgrelay.exe not found. Pass the install folder as the first argument.
    exit /b 64
)
if not exist "%RELAY_CONFIG%" (
    echo ERROR: configuration %RELAY_CONFIG% not found. Copy msgrelay.toml.example there and edit it.
    exit /b 64
)
set "MSGRELAY_OPS__LISTEN=127.0.0.1:9100"
cd /d "%RELAY_DIR%"
"%RELAY_DIR%\msgrelay.exe" proxy --config "%RELAY_CONFIG%"
exit /b %ERRORLEVEL%
