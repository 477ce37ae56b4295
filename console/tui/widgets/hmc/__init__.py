"""The HMC frame: LPAR status, CPU badges, the tasks pad and the hardware messages."""
