"""cupy.cuda.compiler for the emulator: CompileException (g++'s message)."""
from .._raw import CompileException  # noqa: F401
