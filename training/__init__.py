"""Reproduces the Image Aligner training of Art2Mus on ArtSound."""
