"""The emulator's own tests: python -m unittest discover -s tests/emulator/tests -t tests/emulator"""
