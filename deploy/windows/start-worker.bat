@echo off
rem Runs msgrelay worker process(es), for testing.
rem Usage: start-worker.bat [COUNT] [INSTALL_DIR] [CONFIG]
rem   COUNT 1 (default): the worker runs in this window (Ctrl-C stops it).
rem   COUNT 2..9: one new window per worker; close a window to stop that worker.
rem Each worker gets its own ops port 127.0.0.1:9111..9119.
rem Variables set here must not start with MSGRELAY_ unless they are msgrelay settings:
rem msgrelay.exe reads every MSGRELAY_* variable as configuration.
setlocal
set "RELAY_COUNT=%~1"
if "%RELAY_COUNT%"=="" set "RELAY_COUNT=1"
set "RELAY_DIR=%~2"
if "%RELAY_DIR%"=="" set "RELAY_DIR=C:\msgrelay"
set "RELAY_CONFIG=%~3"
if "%RELAY_CONFIG%"=="" set "RELAY_CONFIG=%RELAY_DIR%\msgrelay.toml"
rem set /a turns anything that is not a plain number into something else (or 0).
set /a RELAY_N=RELAY_COUNT 2>nul
if not "%RELAY_N%"=="%RELAY_COUNT%" goto badcount
if %RELAY_N% LSS 1 goto badcount
if %RELAY_N% GTR 9 goto badcount
if not exist "%RELAY_DIR%\msgrelay.exe" (
    echo ERROR: %RELAY_DIR%\msgrelay.exe not found. Pass the install folder as the second argument.
    exit /b 64
)
if not exist "%RELAY_CONFIG%" (
    echo ERROR: configuration %RELAY_CONFIG% not found. Copy msgrelay.toml.example there and edit it.
    exit /b 64
)
cd /d "%RELAY_DIR%"
if %RELAY_N%==1 (
    set "MSGRELAY_OPS__LISTEN=127.0.0.1:9111"
    "%RELAY_DIR%\msgrelay.exe" worker --config "%RELAY_CONFIG%"
    exit /b
)
for /L %%i in (1,1,%RELAY_N%) do (
    rem The new window inherits this environment as it is at this moment.
    set "MSGRELAY_OPS__LISTEN=127.0.0.1:911%%i"
    start "msgrelay worker %%i" "%RELAY_DIR%\msgrelay.exe" worker --config "%RELAY_CONFIG%"
    echo worker %%i started in a new window ^(ops http://127.0.0.1:911%%i/ready^)
)
exit /b 0

:badcount
echo ERROR: COUNT must be a number from 1 to 9, e.g.  start-worker.bat 2
exit /b 64
