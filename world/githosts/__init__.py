"""Local stand-ins for the GitHub and GitLab REST APIs that hooksync reports commit statuses to.

The real PyGithub and python-gitlab clients talk to them over HTTP; state lives in memory.
"""

from world.githosts._server import STANDIN_TOKEN, Call
from world.githosts.github import GitHubStandIn
from world.githosts.gitlab import GitLabStandIn

__all__ = ["STANDIN_TOKEN", "Call", "GitHubStandIn", "GitLabStandIn"]
