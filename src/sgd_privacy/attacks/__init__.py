"""Membership-inference attacks and their metrics (shared by the MIA and DP stages)."""
