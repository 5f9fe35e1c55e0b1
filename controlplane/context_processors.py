from controlplane.roles import Role, user_role


def roles(request):
    """Expose the user's role to templates so buttons appear only for roles that may use them."""
    role = user_role(getattr(request, "user", None))
    return {
        "user_role": role,
        "can_view": role >= Role.VIEWER,
        "can_operate": role >= Role.OPERATOR,
        "can_admin": role >= Role.ADMIN,
    }
