"""FlexPass authentication, second factors, lockout, JWT sessions, user directory and wallets."""
