"""Prompts the concurrency tests of both integrations route: 64 distinct texts, easy and hard."""

_EASY = ["hi", "thanks!", "hello there", "good morning", "what's up", "ok", "bye", "yes"]
_HARD = [
    "Prove that there are infinitely many primes congruent to 3 mod 4.",
    "Write a lock-free concurrent queue in C++ and argue its linearizability.",
    "Derive the closed form of the integral of exp(-x^2) cos(ax) over the real line.",
    "Explain the proof of the Cook-Levin theorem step by step with a reduction.",
    "Implement a red-black tree deletion in Rust with borrow-checker-safe rotations.",
    "Solve the recurrence T(n) = 3T(n/4) + n log n and justify with the master theorem.",
    "Design a distributed consensus protocol tolerant to Byzantine faults and prove safety.",
    "Compute the eigenvalues of a 4x4 circulant matrix and explain the Fourier connection.",
]
PROMPTS = [f"{text} (#{i})" for i in range(4) for text in _EASY + _HARD]
assert len(PROMPTS) == 64 and len(set(PROMPTS)) == 64
