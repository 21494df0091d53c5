"""mandala: persistence as a natural extension of Python for computational work.

``from mandala.imports import *`` gives the public API (``Storage``, ``op``, ...). Importing this
package has no side effects: it configures no logging and loads no optional library.
"""

__version__ = "0.3.0.dev0"
__all__ = ["__version__"]
