"""HTTP and CLI interfaces over ``core``. Each blueprint is a package whose
``__init__`` only creates ``bp`` and imports its routes."""
