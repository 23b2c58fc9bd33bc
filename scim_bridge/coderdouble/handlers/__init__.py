"""HTTP handlers of the Coder double, one module per area of the contract."""
