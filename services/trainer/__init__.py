"""Submit training requests for ready Apps and follow their saga timeline (TR-01…TR-08)."""
