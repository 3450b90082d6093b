"""cupy.cuda.runtime for the emulator: exactly one (emulated) device."""


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    return 1


def getDevice():
    return 0


def deviceSynchronize():
    pass


def runtimeGetVersion():
    return 13000
