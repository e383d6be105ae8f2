"""``python -m hwsim.cli``: the same as the ``hwsim`` command."""

from hwsim.cli import main

main()
