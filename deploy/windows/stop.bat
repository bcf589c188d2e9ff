@echo off
rem Stops the msgrelay services gracefully (see stop.ps1).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0stop.ps1"
exit /b %ERRORLEVEL%
