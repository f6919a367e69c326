"""One exception family, so callers (and the CLI) can tell faceprint's errors from bugs."""


class FaceprintError(Exception):
    """Base of every error faceprint raises on purpose; its message is one line for a user."""


class ImageError(FaceprintError):
    """An input could not be decoded as an image."""


class ImageTooLargeError(ImageError):
    """An image has more pixels than the configured limit (refused from its header)."""


class ModelError(FaceprintError):
    """A model could not be fetched, verified, converted or loaded."""


class NoFaceError(FaceprintError):
    """An operation needed a face and the image had none."""


class GalleryError(FaceprintError):
    """A gallery operation was refused (mixed embedders, a wrong encryption key, ...)."""


class UnknownPersonError(GalleryError):
    """The named person is not enrolled."""


class InvalidNameError(GalleryError):
    """A person's name breaks the naming rule (``faceprint.gallery.names``)."""


class PersonExistsError(GalleryError):
    """A person of that name is already enrolled."""


class BusyError(FaceprintError):
    """The gallery's write lock stayed taken (by another process or writer) past the wait allowed:
    nothing was written; the same request can be tried again shortly."""


def about(source: object, error: FaceprintError) -> FaceprintError:
    """``error`` with its message prefixed by the input it concerns (once), for one-line reports."""
    message = str(error)
    prefix = f"{source}:"
    return type(error)(message if message.startswith(prefix) else f"{prefix} {message}")
