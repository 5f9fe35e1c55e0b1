from django import forms

from controlplane.roles import ASSIGNABLE_ROLES

ROLE_CHOICES = [(role.group_name, role.group_name) for role in ASSIGNABLE_ROLES]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, help_text="Single sign-on finds the person by this address.")
    role = forms.ChoiceField(choices=ROLE_CHOICES)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Optional: without one the person signs in through single sign-on or uses API tokens.",
    )


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


class UserEnvironmentRoleForm(forms.Form):
    environment = forms.SlugField()
    # Empty: the person's own role applies in that environment again.
    role = forms.ChoiceField(choices=[("", "their own role"), *ROLE_CHOICES], required=False)
