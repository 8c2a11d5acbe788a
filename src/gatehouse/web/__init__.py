"""What browsers see: sign-in through the IdP and the device-flow approval page."""
