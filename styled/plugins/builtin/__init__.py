"""The first-party plugins: the Gatys et al. terms (always on) and the Berger & Memisevic extras."""
