"""What every message contract is: a frozen pydantic model with its message type."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

_registry: dict[str, type[Contract]] = {}


class Contract(BaseModel):
    """A message payload. Subclasses name their message ``TYPE`` (or ``TYPES``, when one shape
    serves several types: ``payment.captured``, ``payment.declined``, ...)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=False)

    TYPE: ClassVar[str] = ""
    TYPES: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for message_type in cls.TYPES or ((cls.TYPE,) if cls.TYPE else ()):
            if message_type in _registry and _registry[message_type].__qualname__ != cls.__qualname__:
                raise RuntimeError(f"two contracts for {message_type}: {_registry[message_type]} and {cls}")
            _registry[message_type] = cls

    @classmethod
    def message_types(cls) -> tuple[str, ...]:
        """Every message type this contract serves (its ``TYPES``, else its ``TYPE``)."""
        return cls.TYPES or ((cls.TYPE,) if cls.TYPE else ())

    def message_type(self) -> str:
        """The message type of this instance: ``TYPE``; a contract with ``TYPES`` says which one
        from its fields (``_message_type_of_fields``), and it must be one of them."""
        if self.TYPE:
            return self.TYPE
        message_type = self._message_type_of_fields()
        if message_type not in self.TYPES:
            raise ValueError(f"{type(self).__name__} of type {message_type!r}: not one of its types {self.TYPES}")
        return message_type

    def _message_type_of_fields(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} serves {self.TYPES}: it must say which one an instance is")

    def payload(self) -> dict[str, Any]:
        """The JSON object sent as the message body."""
        return self.model_dump(mode="json")


def contract_for(message_type: str) -> type[Contract]:
    """The contract of ``message_type`` (KeyError when none is defined)."""
    import contracts.messages  # noqa: F401 - defines every contract

    return _registry[message_type]


def contract_types() -> dict[str, type[Contract]]:
    import contracts.messages  # noqa: F401

    return dict(_registry)
