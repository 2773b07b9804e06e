"""Distillation from a frozen teacher: KD, DeDiER and JTT-KD, with their losses."""
