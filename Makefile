# Kconfig-driven Docker registry mirror. Every target is a thin call into
# the Python CLI (python3 -m mirror ...); `make help` lists them.

PYTHON ?= $(if $(wildcard .venv/bin/python3),.venv/bin/python3,python3)
MIRROR := $(PYTHON) -m mirror
KCONFIG_CONFIG ?= .config
EXTRA_VARS ?= extra_vars.yaml
export KCONFIG_CONFIG

.DEFAULT_GOAL := help
.PHONY: help menuconfig oldconfig olddefconfig defconfig savedefconfig check \
	mirror docker-mirror docker-mirror-pull docker-mirror-status deps test

help: ## Show this list of targets
	@awk 'BEGIN {FS = ":.*## "} /^[^ \t#:]+:.*## / {sub(/\$$\(EXTRA_VARS\)/, "extra_vars.yaml", $$1); \
		printf "  %-22s - %s\n", $$1, $$2}' $(MAKEFILE_LIST)

menuconfig: ## Choose mirror options in a text menu
	@$(MIRROR) config menuconfig

oldconfig: ## Update .config, asking about new options
	@$(MIRROR) config oldconfig

olddefconfig: ## Update .config, taking defaults for new options
	@$(MIRROR) config olddefconfig

defconfig: defconfig-default ## Make a .config with every option at its default

defconfig-%: ## Make a .config from defconfigs/NAME
	@$(MIRROR) config defconfig $*

savedefconfig: $(KCONFIG_CONFIG) ## Save the minimal configuration to ./defconfig
	@$(MIRROR) config savedefconfig --out defconfig

# Regenerated whenever .config changes, for Ansible-style workflows.
$(EXTRA_VARS): $(KCONFIG_CONFIG) ## Write the .config as Ansible variables
	@$(MIRROR) extra-vars --out $@

check: $(KCONFIG_CONFIG) ## Validate .config
	@$(MIRROR) check

mirror: $(EXTRA_VARS) ## Set up every enabled mirror (the Docker mirror included)
	@$(MIRROR) mirror

docker-mirror: $(EXTRA_VARS) ## Set up the Docker registry mirror and its refresh
	@$(MIRROR) docker-mirror

docker-mirror-pull: $(EXTRA_VARS) ## Warm the mirror with the images to keep, now
	@$(MIRROR) pull

docker-mirror-status: $(EXTRA_VARS) ## Show what the mirror holds and whether it answers
	@$(MIRROR) status

.PHONY: docker-mirror-remove
docker-mirror-remove: ## Take the mirror down (keeper, units, containers); PURGE=1 also deletes the cache
	@$(MIRROR) remove $(if $(filter 1 y yes,$(PURGE)),--purge)

.PHONY: docker-mirror-gc
# DRY_RUN=1: list what would go and the bytes it would free.
docker-mirror-gc: $(EXTRA_VARS) ## Drop what the cache policy says and free its disk (DRY_RUN=1: list only)
	@$(MIRROR) gc $(if $(filter 1 y yes,$(DRY_RUN)),--dry-run)

.PHONY: docker-mirror-restore
docker-mirror-restore: $(EXTRA_VARS) ## Load images/archives/*.tar back into the mirror
	@$(MIRROR) restore

.PHONY: docker-mirror-k8s
# K8S_OUT=DIR: where to write them (default: k8s/ beside .config); K8S_ARGS: more
# options of 'python3 -m mirror k8s' (--namespace, --storage-class, the images).
docker-mirror-k8s: $(EXTRA_VARS) ## Write Kubernetes manifests for the mirror into k8s/ (K8S_OUT=DIR)
	@$(MIRROR) k8s $(if $(K8S_OUT),--out '$(K8S_OUT)') $(K8S_ARGS)

.PHONY: docker-mirror-clients docker-mirror-clients-undo docker-mirror-distribute

docker-mirror-clients: $(EXTRA_VARS) ## Point this host's clients (Docker, containerd, Podman, Buildah, Skopeo, CRI-O, BuildKit, k3s) at the mirror
	@$(MIRROR) clients

docker-mirror-clients-undo: ## Take back what docker-mirror-clients added
	@$(MIRROR) clients-undo

# The same client settings on every host of INVENTORY, through Ansible
# (ansible-core comes with scripts/install-deps.sh). Hosts other than this one need a
# mirror address they can reach: a LAN bind address, or
# ANSIBLE_ARGS='-e docker_mirror_address=HOST'.
INVENTORY ?= localhost,
ANSIBLE_PLAYBOOK ?= $(if $(wildcard .venv/bin/ansible-playbook),.venv/bin/ansible-playbook,ansible-playbook)
docker_mirror_comma := ,

# This host alone (the default) runs with Ansible's own Python, as its implicit localhost does.
docker_mirror_local := -c local -e 'ansible_python_interpreter={{ ansible_playbook_python }}'

docker-mirror-distribute: $(EXTRA_VARS) ## Point the hosts of INVENTORY=... at the mirror (Ansible)
	@$(ANSIBLE_PLAYBOOK) -i '$(INVENTORY)' $(if $(filter localhost$(docker_mirror_comma),$(INVENTORY)),$(docker_mirror_local)) \
		ansible/docker-mirror-clients.yml -e @$(EXTRA_VARS) $(ANSIBLE_ARGS)

deps: ## Install what the mirror needs (apt packages, .venv, Docker engine, the registry engine)
	@bash scripts/install-deps.sh

.PHONY: engine
# Once per machine (make deps runs it); again only when patches/distribution changes.
# REBUILD=1: build anew, fetching Debian's source again; TEST=1: then Go's own tests in the tree.
engine: ## Build the registry engine: distribution from its source package + patches/distribution
	@$(MIRROR) engine --apt $(if $(filter 1 y yes,$(REBUILD)),--rebuild) $(if $(filter 1 y yes,$(TEST)),--test)

.PHONY: docs
docs: ## Write docs/options.md, the options reference, from the Kconfig tree
	@$(MIRROR) docs

test: ## Run the test suite
	@$(PYTHON) -m pytest $(PYTEST_ARGS)

# As the kernel's syncconfig: a .config older than the Kconfig files (a pull
# brought new options) gets the defaults of the new options; every value
# already set stays. touch: kconfiglib leaves an unchanged file as it was.
$(KCONFIG_CONFIG): Kconfig $(wildcard kconfig/Kconfig.*)
	@if [ ! -f $@ ]; then \
		echo "No $(KCONFIG_CONFIG) yet: run 'make defconfig' (defaults) or 'make menuconfig' first." >&2; \
		exit 2; \
	fi
	@echo "Kconfig is newer than $@: adding the defaults of new options (make olddefconfig)" >&2
	@$(MIRROR) config olddefconfig >/dev/null && touch $@
