"""joulemeter's measuring layer: meter the energy of any code and keep every run in a ledger."""
