"""The cimt application: intima-media boundaries in carotid ultrasound (PAPER.md section 4)."""
