@echo off
rem Starts the msgrelay services (see start.ps1).
powershell.exe -NoProfile -ExecutionPolicy Bypass -File "%~dp0start.ps1"
exit /b %ERRORLEVEL%
