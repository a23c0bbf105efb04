"""Authentication: JWT secrets, minting and (later) verification."""
