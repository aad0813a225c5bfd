"""Training routers (``pip install 'langchain-routellm[train]'`` for the torch-based trainers)."""
