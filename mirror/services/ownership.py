"""One owner per mirror on a host: whose are the containers this mirror's names name?

Two checkouts with the same container prefix (kdevops trees, all with the
default settings) name the same containers. Each mirror container carries
the .config it was made for (containers.LABEL_CONFIG). Before anything is
touched, the containers of this mirror's names made for another .config are:

- taken over, when that .config is gone or switches the mirror off (nobody
  keeps them: its keeper stops by itself, mirror.services.keeper);
- shared, when that .config makes the same mirror (every setting equal but
  its own path, mirror.model.ownership): this checkout uses that mirror as
  it is, and its owner's keeper, units and refresh keep it;
- else refused (MirrorOwned), naming the owner and the settings that differ,
  with nothing changed.

The owner's settings are read from its .config as it is: an owner set up
with command-line overrides (--path, --port, --name) is compared without
them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import settings as config_settings
from ..engine import containers, owners, replicas
from ..errors import MirrorError, MirrorOwned, NotConfiguredError
from ..model.ownership import differences
from ..model.settings import Settings


@dataclass(frozen=True)
class Shared:
    owner: str                 # the owner's .config
    names: tuple[str, ...]     # its containers this mirror uses


def mirror_names(settings: Settings) -> list[str]:
    """The containers start_mirrors() may replace for `settings`."""
    names = [name for upstream in settings.upstreams for name in containers.container_names(settings, upstream)]
    if settings.replicas.enabled:
        names += [replicas.redis_name(settings), replicas.lb_name(settings)]
    return names


def _owner_settings(path: str) -> tuple[Settings | None, str]:
    """The owner's settings, or None and why nobody keeps its containers any more."""
    try:
        theirs = config_settings.load(path)
    except NotConfiguredError:
        return None, f"{path} is gone"
    except MirrorError as err:
        raise MirrorOwned(f"cannot tell whether the mirror of {path} is the same as this one: "
                          f"its settings do not load ({err}); nothing was changed") from None
    if not theirs.enabled or not theirs.install:
        return None, f"{path} switches its mirror off"
    return theirs, ""


def resolve(settings: Settings, client, log=print) -> Shared | None:
    """None: the containers are this .config's to make (or take over); Shared: another
    .config's, the same mirror, to be used as they are. Raises MirrorOwned otherwise."""
    mine = containers.config_of(settings)
    foreign = {name: owner for name, owner in owners.owners(client, mirror_names(settings)).items()
               if owner != mine}
    if not foreign:
        return None
    shared = []
    for owner in sorted(set(foreign.values())):
        names = sorted(name for name, held in foreign.items() if held == owner)
        theirs, why = _owner_settings(owner)
        if theirs is None:
            log(f"taking over {', '.join(names)}: {why}")
            continue
        differ = differences(theirs, settings)
        if differ:
            raise MirrorOwned(
                f"the containers {', '.join(names)} belong to the mirror of {owner}, whose settings "
                f"differ from those of {mine}:\n  " + "\n  ".join(differ) + "\n"
                "Nothing was changed. Use the same settings to share that mirror, choose another "
                "DOCKER_MIRROR_CONTAINER_PREFIX (and port, and directory) in 'make menuconfig', "
                f"or take that mirror down first ('make docker-mirror-remove' with {owner}).")
        shared.append(Shared(owner, tuple(names)))
    if not shared:
        return None
    if len(shared) > 1:
        raise MirrorOwned("the containers of this mirror belong to several other .config files ("
                          + ", ".join(s.owner for s in shared) + "): nothing was changed")
    return shared[0]
