"""The bits and fields of the 64-bit PSW mask (z/Architecture, S390_FACTS.md §1.6): one
definition for the interruption logic, the dump-file summaries and the console."""

PSW_PER = 0x4000000000000000
PSW_DAT = 0x0400000000000000
PSW_IO = 0x0200000000000000
PSW_EXT = 0x0100000000000000
PSW_MCHECK = 0x0004000000000000
PSW_WAIT = 0x0002000000000000
PSW_PROBLEM = 0x0001000000000000
PSW_EA = 0x0000000100000000
PSW_BA = 0x0000000080000000
PSW_KEY_SHIFT = 52  # 4-bit storage key
PSW_ASC_SHIFT = 46  # 2-bit address-space control
PSW_CC_SHIFT = 44  # 2-bit condition code
