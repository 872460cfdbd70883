import sys

from cpvae_assets.cli.main import main

sys.exit(main())
