"""Authentication: JWT secrets, minting and verification."""

import warnings

# pyjwt warns on every encode and decode with an HS256 key under 32 bytes;
# the process says so once, at start (``bootstrap``), and goes on quietly.
warnings.filterwarnings("ignore", message="The HMAC key is .* bytes long")
