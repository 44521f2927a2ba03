"""Build Apps from Tasks and library Components; generate the App spec file (BL-01…BL-12)."""
