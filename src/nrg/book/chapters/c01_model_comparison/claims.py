"""The claim chapter 1 checks: decode dominates inference time (Maliakel et al.), on every model's generations."""
from __future__ import annotations

from nrg.book.claims import Claim, decode_share_claim

CLAIMS: tuple[Claim, ...] = (decode_share_claim("01_model_comparison"),)
