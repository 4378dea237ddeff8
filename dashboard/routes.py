"""Every path the dashboard serves or links to, in one place."""

HOME = "/"  # the landing page when signed out, the Overview when signed in
LOGIN = "/login"
REGISTER = "/register"
API_KEYS = "/settings/api-keys"
CREDITS = "/credits"
LOGS = "/logs"
IMAGES = "/images"
ACCOUNT = "/settings/account"
ADMIN_MODELS = "/admin/models"
ADMIN_USERS = "/admin/users"
ADMIN_MARGIN = "/admin/margin"
ADMIN_USAGE = "/admin/usage"
ADMIN_USER = "/admin/users/[user_id]"  # one user's page: admin_user(id)

# Backend routes (FastAPI, in `auth_routes`), and the API's own docs.
AUTH_REGISTER = "/auth/register"
AUTH_LOGIN = "/auth/login"
AUTH_LOGOUT = "/auth/logout"
AUTH_PASSWORD = "/auth/password"
AUTH_KEYS = "/auth/keys"
EXPORT_LOGS = "/export/logs.csv"
API_DOCS = "/api/v1/docs"


def admin_user(user_id: int) -> str:
    return ADMIN_USER.replace("[user_id]", str(user_id))
