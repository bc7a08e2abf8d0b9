"""The deploy errors `run` catches, importable without pydantic or asyncssh (a run without
--cluster loads neither)."""


class ClusterFileError(ValueError):
    """One line per problem of a cluster file (exit 2)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class ClusterUpError(RuntimeError):
    """One line per failed host when `run --cluster --up` brings the cluster up (exit 3)."""
