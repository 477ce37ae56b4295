"""The console's screens: the main HMC screen and its modal forms and dialogs."""
